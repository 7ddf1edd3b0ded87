SELECT DISTINCT
  "t15"."customer_id"
FROM (
  SELECT
    "t3"."customer_id",
    "t3"."email",
    "t3"."loyalty_tier",
    "t3"."email_opt_in",
    "t3"."signup_at",
    "t3"."birth_date",
    "t14"."__act1_k",
    "t14"."__act2_value",
    "t10"."__act4_k",
    "t10"."__act5_value",
    "t11"."__act6_k",
    "t11"."__act7_value"
  FROM "customers" AS "t3"
  LEFT OUTER JOIN (
    SELECT
      "t12"."__act1_k",
      "t12"."__act2_value"
    FROM (
      SELECT
        "t7"."__act1_k",
        "t7"."__act2_value",
        "t7"."__act3_n",
        ROW_NUMBER() OVER (
          PARTITION BY "t7"."__act1_k"
          ORDER BY "t7"."__act3_n" DESC NULLS LAST, "t7"."__act2_value" ASC
          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        ) - 1 AS "__act_rank"
      FROM (
        SELECT
          "t5"."customer_id" AS "__act1_k",
          "t5"."category" AS "__act2_value",
          COUNT(*) AS "__act3_n"
        FROM (
          SELECT
            *
          FROM "order_items" AS "t2"
          WHERE
            "t2"."ordered_at" > CAST('2025-09-15T13:00:00' AS TIMESTAMP)
            AND "t2"."ordered_at" <= CAST('2026-03-15T13:00:00' AS TIMESTAMP)
            AND "t2"."category" IS NOT NULL
        ) AS "t5"
        GROUP BY
          1,
          2
      ) AS "t7"
    ) AS "t12"
    WHERE
      "t12"."__act_rank" = 0
  ) AS "t14"
    ON "t3"."customer_id" = "t14"."__act1_k"
  LEFT OUTER JOIN (
    SELECT
      "t6"."customer_id" AS "__act4_k",
      MIN("t6"."ordered_at") AS "__act5_value"
    FROM (
      SELECT
        *
      FROM "orders" AS "t1"
      WHERE
        "t1"."ordered_at" <= CAST('2026-03-15T13:00:00' AS TIMESTAMP)
        AND NOT (
          COALESCE("t1"."is_returned", FALSE)
        )
        AND "t1"."channel" = 'app'
    ) AS "t6"
    GROUP BY
      1
  ) AS "t10"
    ON "t3"."customer_id" = "t10"."__act4_k"
  LEFT OUTER JOIN (
    SELECT
      "t4"."customer_id" AS "__act6_k",
      SUM(CAST("t4"."price" AS DECIMAL(38, 4))) AS "__act7_value"
    FROM (
      SELECT
        *
      FROM "order_items" AS "t2"
      WHERE
        "t2"."ordered_at" <= CAST('2026-03-15T13:00:00' AS TIMESTAMP)
    ) AS "t4"
    GROUP BY
      1
  ) AS "t11"
    ON "t3"."customer_id" = "t11"."__act6_k"
) AS "t15"
WHERE
  (
    COALESCE("t15"."__act2_value" IN ('Shoes', 'Bags'), FALSE)
    OR COALESCE(
      (
        "t15"."__act5_value" > CAST('2026-03-01T13:00:00' AS TIMESTAMP)
      )
      AND (
        "t15"."__act5_value" <= CAST('2026-03-15T13:00:00' AS TIMESTAMP)
      ),
      FALSE
    )
    OR COALESCE(
      (
        COALESCE("t15"."__act7_value", CAST('0.0000' AS DECIMAL(38, 4))) >= CAST('100.0000' AS DECIMAL(38, 4))
      )
      AND (
        COALESCE("t15"."__act7_value", CAST('0.0000' AS DECIMAL(38, 4))) <= CAST('250.5000' AS DECIMAL(38, 4))
      ),
      FALSE
    )
  )
  AND "t15"."customer_id" IS NOT NULL
