SELECT customer_id FROM orders WHERE ordered_at >= CAST('2026-03-15' AS DATE) - INTERVAL '30' DAY AND NOT is_returned GROUP BY customer_id HAVING SUM(total) > 100
