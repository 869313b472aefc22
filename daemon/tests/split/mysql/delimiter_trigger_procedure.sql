CREATE TABLE t (a int, note varchar(40));
CREATE TABLE audit (a int, kind varchar(10));

DELIMITER //
CREATE TRIGGER t_clamp BEFORE INSERT ON t FOR EACH ROW
BEGIN
  IF NEW.a < 0 THEN SET NEW.a = 0; END IF; -- a comment with // in it
  SET NEW.note = CONCAT(NEW.note, ' // ;'); # and here: //
END//

/* a block comment // between statements */
CREATE PROCEDURE classify(IN x int)
BEGIN
  DECLARE kind varchar(10);
  CASE
    WHEN x > 9 THEN SET kind = 'big';
    WHEN x > 0 THEN SET kind = "small//";
    ELSE SET kind = 'none';
  END CASE;
  INSERT INTO audit VALUES (x, kind);
END //
delimiter ;

INSERT INTO t VALUES (-1, 'x');
CALL classify(12); CALL classify(0);
