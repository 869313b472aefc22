CREATE TABLE grades (score int, grade char(1));
DELIMITER //
CREATE PROCEDURE grade_all()
BEGIN
  DECLARE done int DEFAULT 0;
  UPDATE grades SET grade = CASE WHEN score >= 90 THEN 'A' ELSE 'B' END;
  loop_label: LOOP
    SET done = done + 1;
    CASE done
      WHEN 3 THEN LEAVE loop_label;
      ELSE BEGIN END;
    END CASE;
  END LOOP loop_label;
  WHILE done > 0 DO SET done = done - 1; END WHILE;
  REPEAT SET done = done + 1; UNTIL done > 2 END REPEAT;
END//
DELIMITER ;
INSERT INTO grades (score) VALUES (95), (50);
CALL grade_all();
