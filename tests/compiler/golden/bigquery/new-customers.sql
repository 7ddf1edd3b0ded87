SELECT DISTINCT
  `t0`.`customer_id`
FROM `customers` AS `t0`
WHERE
  COALESCE(`t0`.`signup_at` >= DATETIME('2026-02-13T00:00:00'), FALSE)
  AND COALESCE(`t0`.`birth_date` < DATE(2008, 3, 15), FALSE)
  AND COALESCE((
    `t0`.`email` IS NOT NULL
  ) AND (
    LENGTH(`t0`.`email`) > 0
  ), FALSE)
  AND `t0`.`customer_id` IS NOT NULL
