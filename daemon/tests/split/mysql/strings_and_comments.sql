CREATE TABLE s (v varchar(40));
INSERT INTO s VALUES ('it\'s; fine'), ("double; \"quoted\""), ('two '' quotes;');
/* block; comment */ INSERT INTO s VALUES ('after a comment');
# hash comment; here
SELECT `v` AS `a;b` FROM s; -- dash comment; here
