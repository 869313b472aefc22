-- A demo tenant with two users, so a fresh database has something to show
-- (and the display_name backfill in version 10 has rows to work on).
INSERT INTO accounts (slug, name, plan)
VALUES ('demo', 'Demo Company', 'pro');

INSERT INTO users (account_id, email, role)
SELECT id, 'ada.lovelace@example.com', 'owner' FROM accounts WHERE slug = 'demo';

INSERT INTO users (account_id, email, role)
SELECT id, 'grace.hopper@example.com', 'member' FROM accounts WHERE slug = 'demo';
