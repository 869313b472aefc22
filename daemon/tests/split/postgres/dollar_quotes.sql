CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
  RETURN $$ inner; $$ || $x$;$x$;
END;
$fn$;
DO $body$
BEGIN
  PERFORM f();
END
$body$;
SELECT $q$a;b$q$, f();
