-- SQLite triggers cannot assign NEW.*, so this is an AFTER trigger that
-- updates the row again. The guard in its WHERE skips updates that already
-- set updated_at themselves, which also stops the trigger re-firing on its
-- own UPDATE should recursive_triggers ever be enabled. (A WHEN clause would
-- say the same, but the lint's parser does not read it on a trigger; = is
-- enough, since updated_at is NOT NULL.)
CREATE TRIGGER projects_touch_updated_at
AFTER UPDATE ON projects
FOR EACH ROW
BEGIN
    UPDATE projects
    SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id AND NEW.updated_at = OLD.updated_at;
END;
