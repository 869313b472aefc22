-- A compound BEGIN ... END body: the semicolons inside it belong to the
-- trigger, only the one after the final END terminates the statement.
-- Besides bumping updated_at, the trigger keeps created_at immutable.
CREATE TRIGGER projects_touch_updated_at
BEFORE UPDATE ON projects
FOR EACH ROW
BEGIN
    SET NEW.updated_at = CURRENT_TIMESTAMP(6);
    IF NOT (NEW.created_at <=> OLD.created_at) THEN
        SET NEW.created_at = OLD.created_at;
    END IF;
END;
