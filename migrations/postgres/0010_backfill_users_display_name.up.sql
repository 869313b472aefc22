-- Data backfill: default the display name to the local part of the email.
UPDATE users
SET display_name = split_part(email, '@', 1)
WHERE display_name IS NULL;
