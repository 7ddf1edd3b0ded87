SELECT DISTINCT
  `t9`.`customer_id`
FROM (
  SELECT
    `t2`.`customer_id`,
    `t2`.`flag`,
    `t2`.`n`,
    `t2`.`amount`,
    `t2`.`ratio`,
    `t2`.`name`,
    `t2`.`born`,
    `t2`.`seen_at`,
    `t7`.`__act1_k`,
    `t7`.`__act2_count`,
    `t8`.`__act6_k`,
    `t8`.`__act7_count`
  FROM `customers` AS `t2`
  LEFT OUTER JOIN (
    SELECT
      `t3`.`customer_id` AS `__act1_k`,
      COUNT(DISTINCT `t3`.`run_id`) AS `__act2_count`
    FROM (
      SELECT
        *
      FROM `activator`.`recipients` AS `t1`
      WHERE
        `t1`.`campaign` = 'winback'
        AND `t1`.`action` = 'add'
        AND `t1`.`sent_at` > TIMESTAMP('2026-03-08T12:00:00+00:00')
        AND `t1`.`sent_at` <= TIMESTAMP('2026-03-15T12:00:00+00:00')
        AND `t1`.`treatment_group` = 'offer'
    ) AS `t3`
    GROUP BY
      1
  ) AS `t7`
    ON `t2`.`customer_id` = `t7`.`__act1_k`
  LEFT OUTER JOIN (
    SELECT
      `t4`.`customer_id` AS `__act6_k`,
      COUNT(DISTINCT `t4`.`run_id`) AS `__act7_count`
    FROM (
      SELECT
        *
      FROM `activator`.`recipients` AS `t1`
      WHERE
        `t1`.`campaign` = 'winback'
        AND `t1`.`action` = 'add'
        AND `t1`.`sent_at` <= TIMESTAMP('2026-03-15T12:00:00+00:00')
        AND NOT (
          COALESCE(`t1`.`control`, FALSE)
        )
    ) AS `t4`
    GROUP BY
      1
  ) AS `t8`
    ON `t2`.`customer_id` = `t8`.`__act6_k`
) AS `t9`
WHERE
  COALESCE(`t9`.`flag` = TRUE, FALSE)
  AND NOT (
    COALESCE(COALESCE(`t9`.`__act2_count`, 0) >= 1, FALSE)
  )
  AND NOT (
    COALESCE(COALESCE(`t9`.`__act7_count`, 0) >= 3, FALSE)
  )
  AND `t9`.`customer_id` IS NOT NULL
