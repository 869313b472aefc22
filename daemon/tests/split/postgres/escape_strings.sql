CREATE TABLE s (v text DEFAULT E'a\';b');
INSERT INTO s VALUES (E'it\'s; fine'), (E'\\'), ('plain '' quote;'), (U&'d\0061t; a');
SELECT E'\'', 'x;y';
