-- avocet:no-transaction
-- `sub.case`, `sub.end` and `t.begin` are column names, not CASE, END or BEGIN.
CREATE TABLE items (id int PRIMARY KEY, "case" text, "end" int, "begin" int);
CREATE VIEW item_cases AS
  SELECT sub.case, t.begin
  FROM (SELECT id, "case" FROM items) AS sub
  JOIN items AS t ON t.id = sub.id;
CREATE INDEX CONCURRENTLY items_case ON items ("case");
CREATE VIEW item_ends AS SELECT x.end FROM items AS x;
CREATE INDEX CONCURRENTLY items_end ON items ("end");
