/* Revenue per account: void invoices are ignored, paid ones are also
   summed separately. Accounts without invoices show zeros. */
CREATE VIEW account_revenue AS
SELECT
    a.id                                                          AS account_id,
    a.slug                                                        AS account_slug,
    count(i.id)                                                   AS invoice_count,
    coalesce(sum(i.total), 0)                                     AS revenue,
    coalesce(sum(CASE WHEN i.status = 'paid' THEN i.total END), 0) AS paid_revenue
FROM accounts a
LEFT JOIN invoices i
       ON i.account_id = a.id
      AND i.status <> 'void'
GROUP BY a.id, a.slug;
