CREATE TABLE t (a int, b text);
CREATE TABLE log (a int, what text);
CREATE TRIGGER t_log AFTER INSERT ON t
BEGIN
  INSERT INTO log VALUES (NEW.a, CASE WHEN NEW.a > 1 THEN 'big; one' ELSE 'small' END);
  UPDATE t SET b = 'seen;' WHERE a = NEW.a;
END;
INSERT INTO t VALUES (2, NULL);
