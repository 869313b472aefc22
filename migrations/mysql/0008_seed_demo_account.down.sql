DELETE FROM users
WHERE email IN ('ada.lovelace@example.com', 'grace.hopper@example.com')
  AND account_id IN (SELECT id FROM accounts WHERE slug = 'demo');

DELETE FROM accounts WHERE slug = 'demo';
