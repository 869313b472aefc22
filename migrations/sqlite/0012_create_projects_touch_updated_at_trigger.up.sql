-- SQLite triggers cannot assign NEW.*, so this is an AFTER trigger that
-- updates the row again. The WHEN guard skips updates that already set
-- updated_at themselves, which also stops the trigger re-firing on its own
-- UPDATE should recursive_triggers ever be enabled.
CREATE TRIGGER projects_touch_updated_at
AFTER UPDATE ON projects
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE projects
    SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;
