SELECT DISTINCT
  `t16`.`customer_id`
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
    `t15`.`__act1_k`,
    `t15`.`__act2_count`,
    `t15`.`__act5_latest`,
    `t11`.`__act6_k`,
    `t11`.`__act7_count`,
    `t12`.`__act11_k`,
    `t12`.`__act12_count`,
    `t12`.`__act13_first`
  FROM `customers` AS `t2`
  LEFT OUTER JOIN (
    SELECT
      `t13`.`traveller` AS `__act1_k`,
      COUNT(DISTINCT `t13`.`entry`) AS `__act2_count`,
      MAX(`t13`.`node`) AS `__act5_latest`
    FROM (
      SELECT
        `t7`.`journey`,
        `t7`.`version`,
        `t7`.`traveller`,
        `t7`.`entry`,
        `t7`.`entry_at`,
        `t7`.`node`,
        `t7`.`parent`,
        `t7`.`path`,
        `t7`.`control`,
        `t7`.`entered_at`,
        `t7`.`due_at`,
        `t7`.`qualified`,
        `t7`.`run_id`,
        `t7`.`stage`,
        `t7`.`step`
      FROM (
        SELECT
          *
        FROM `activator`.`journey_log` AS `t1`
        WHERE
          `t1`.`journey` = 'welcome'
          AND `t1`.`entered_at` <= CAST('2026-03-15T12:00:00+00:00' AS TIMESTAMP)
          AND `t1`.`stage` = 'start'
          AND `t1`.`node` = 'wait-3d'
      ) AS `t7`
      LEFT ANTI JOIN (
        SELECT
          `t1`.`traveller` AS `__act_t`,
          `t1`.`entry` AS `__act_e`,
          `t1`.`node` AS `__act_n`
        FROM `activator`.`journey_log` AS `t1`
        WHERE
          `t1`.`journey` = 'welcome'
          AND `t1`.`entered_at` <= CAST('2026-03-15T12:00:00+00:00' AS TIMESTAMP)
          AND `t1`.`stage` IN ('complete', 'exit', 'orphan')
      ) AS `t8`
        ON `t7`.`traveller` = `t8`.`__act_t`
        AND `t7`.`entry` = `t8`.`__act_e`
        AND `t7`.`node` = `t8`.`__act_n`
    ) AS `t13`
    GROUP BY
      1
  ) AS `t15`
    ON `t2`.`customer_id` = `t15`.`__act1_k`
  LEFT OUTER JOIN (
    SELECT
      `t3`.`traveller` AS `__act6_k`,
      COUNT(DISTINCT `t3`.`entry`) AS `__act7_count`
    FROM (
      SELECT
        *
      FROM `activator`.`journey_log` AS `t1`
      WHERE
        `t1`.`journey` = 'welcome'
        AND `t1`.`entered_at` <= CAST('2026-03-15T12:00:00+00:00' AS TIMESTAMP)
        AND `t1`.`entered_at` > CAST('2026-02-13T12:00:00+00:00' AS TIMESTAMP)
        AND `t1`.`stage` = 'goal'
        AND `t1`.`path` = 'first-time-buyers'
    ) AS `t3`
    GROUP BY
      1
  ) AS `t11`
    ON `t2`.`customer_id` = `t11`.`__act6_k`
  LEFT OUTER JOIN (
    SELECT
      `t4`.`traveller` AS `__act11_k`,
      COUNT(DISTINCT `t4`.`entry`) AS `__act12_count`,
      MIN(`t4`.`entered_at`) AS `__act13_first`
    FROM (
      SELECT
        *
      FROM `activator`.`journey_log` AS `t1`
      WHERE
        `t1`.`journey` = 'welcome'
        AND `t1`.`entered_at` <= CAST('2026-03-15T12:00:00+00:00' AS TIMESTAMP)
        AND `t1`.`stage` = 'start'
        AND `t1`.`parent` IS NULL
    ) AS `t4`
    GROUP BY
      1
  ) AS `t12`
    ON `t2`.`customer_id` = `t12`.`__act11_k`
) AS `t16`
WHERE
  COALESCE(COALESCE(`t16`.`__act2_count`, 0) >= 1, FALSE)
  AND NOT (
    COALESCE(COALESCE(`t16`.`__act7_count`, 0) >= 1, FALSE)
  )
  AND COALESCE(COALESCE(`t16`.`__act12_count`, 0) < 3, FALSE)
  AND COALESCE(`t16`.`__act13_first` >= CAST('2025-12-15T23:00:00+00:00' AS TIMESTAMP), FALSE)
  AND `t16`.`customer_id` IS NOT NULL
