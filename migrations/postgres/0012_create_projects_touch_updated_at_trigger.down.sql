DROP TRIGGER projects_touch_updated_at ON projects;
DROP FUNCTION set_updated_at();
