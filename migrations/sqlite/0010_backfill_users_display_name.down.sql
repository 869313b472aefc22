-- Undo the backfill: clear only names that still equal the derived default.
UPDATE users
SET display_name = NULL
WHERE display_name = substr(email, 1, instr(email, '@') - 1);
