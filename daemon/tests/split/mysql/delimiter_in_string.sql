CREATE TABLE notes (body text);
INSERT INTO notes VALUES ('first line
DELIMITER //
still the string; and // too');
SELECT body FROM notes
WHERE body LIKE '%;%';
