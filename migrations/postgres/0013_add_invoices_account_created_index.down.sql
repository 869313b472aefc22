-- avocet:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS invoices_account_created_idx;
