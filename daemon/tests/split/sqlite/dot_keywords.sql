CREATE TABLE x ("end" int, "begin" int, "case" int);
CREATE VIEW v AS SELECT x."case", x.begin, x.end FROM x;
CREATE TABLE y (a int);
CREATE TRIGGER x_copy AFTER INSERT ON x
BEGIN
  INSERT INTO y VALUES (NEW.end + 0);
  INSERT INTO y VALUES (NEW.begin + 0);
END;
INSERT INTO x VALUES (1, 2, 3);
