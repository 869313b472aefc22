-- split-test: avocet-only (the mysql client needs DELIMITER to send a body whole; Avocet does not)
CREATE TABLE t (a int, `end` int);
CREATE PROCEDURE p(x INT)
main: BEGIN
  CASE x WHEN 1 THEN SELECT 1; ELSE SELECT t.end FROM (SELECT 2 AS `end`) AS t; END CASE;
  WHILE x > 0 DO SET x = x - 1; END WHILE;
  BEGIN SELECT 3; END;
END main;
CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW BEGIN
  IF NEW.a < 0 THEN SET NEW.a = 0; END IF;
  SET NEW.a = CASE WHEN NEW.a > 9 THEN 9 ELSE NEW.a END;
  SET NEW.end = OLD.end;
END;
INSERT INTO t VALUES (1, 2);
