/* a block; comment */
CREATE TABLE s (v text CHECK (v <> ';'), w text DEFAULT ('x;y'));
INSERT INTO s (v) VALUES ('it''s; fine'); -- trailing; comment
SELECT "v", [v], `v` FROM s WHERE v IN (SELECT v FROM s WHERE v LIKE '%;%');
