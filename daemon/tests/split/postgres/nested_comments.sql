/* outer /* inner; */ still a comment; */
CREATE TABLE c (a int); /* after; /* nested; */ */
-- a line comment; with a semicolon
SELECT 1 /* mid; /* deep; */ */ + 2;
INSERT INTO c VALUES (3) -- trailing; comment
;
