-- Generic "touch" function; the body is dollar-quoted with a tag so that the
-- semicolons inside it are not statement terminators.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$fn$;

CREATE TRIGGER projects_touch_updated_at
BEFORE UPDATE ON projects
FOR EACH ROW
EXECUTE FUNCTION set_updated_at();
