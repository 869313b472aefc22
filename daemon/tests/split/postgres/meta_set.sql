SELECT '\set x 1';
/* \i nothing */
\set ON_ERROR_STOP 1
