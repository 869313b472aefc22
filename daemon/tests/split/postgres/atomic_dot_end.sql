-- split-test: avocet-only (psql 15 takes `x.end` in a BEGIN ATOMIC body for END and sends the body cut; the server, sent it whole, accepts it)
CREATE TABLE t ("end" int);
CREATE FUNCTION f() RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT x.end FROM t AS x;
  SELECT 1;
END;
SELECT 2;
