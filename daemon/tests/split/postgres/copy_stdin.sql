CREATE TABLE people (id int, name text);
COPY people (id, name) FROM stdin;
1	ann's
\.
SELECT 1;
