CREATE TABLE people (id int, name text);
COPY (SELECT 1 FROM people) TO STDOUT;
COPY people FROM STDIN WITH (FORMAT csv);
1,ann
\.
