WITH "t5" AS (
  SELECT
    *
  FROM "orders" AS "t1"
  WHERE
    "t1"."ordered_at" > CAST(FROM_ISO8601_TIMESTAMP('2025-03-15T13:00:00') AS TIMESTAMP)
    AND "t1"."ordered_at" <= CAST(FROM_ISO8601_TIMESTAMP('2026-03-15T13:00:00') AS TIMESTAMP)
    AND NOT (
      COALESCE("t1"."is_returned", FALSE)
    )
)
SELECT DISTINCT
  "t16"."customer_id"
FROM (
  SELECT
    "t2"."customer_id",
    "t2"."email",
    "t2"."loyalty_tier",
    "t2"."email_opt_in",
    "t2"."signup_at",
    "t2"."birth_date",
    "t12"."__act0_k",
    "t12"."__act0_value",
    "t11"."__act1_k",
    "t11"."__act1_value",
    "t9"."__act2_k",
    "t9"."__act2_value",
    "t15"."__act3_k",
    "t15"."__act3_decile"
  FROM "customers" AS "t2"
  LEFT OUTER JOIN (
    SELECT
      "t6"."customer_id" AS "__act0_k",
      COUNT(*) AS "__act0_value"
    FROM "t5" AS "t6"
    GROUP BY
      1
  ) AS "t12"
    ON "t2"."customer_id" = "t12"."__act0_k"
  LEFT OUTER JOIN (
    SELECT
      "t3"."customer_id" AS "__act1_k",
      SUM("t3"."total") AS "__act1_value"
    FROM (
      SELECT
        *
      FROM "orders" AS "t1"
      WHERE
        "t1"."ordered_at" >= CAST(FROM_ISO8601_TIMESTAMP('2025-01-01T00:00:00') AS TIMESTAMP)
        AND "t1"."ordered_at" < CAST(FROM_ISO8601_TIMESTAMP('2026-01-01T00:00:00') AS TIMESTAMP)
        AND NOT (
          COALESCE("t1"."is_returned", FALSE)
        )
    ) AS "t3"
    GROUP BY
      1
  ) AS "t11"
    ON "t2"."customer_id" = "t11"."__act1_k"
  LEFT OUTER JOIN (
    SELECT
      "t4"."customer_id" AS "__act2_k",
      COUNT(*) AS "__act2_value"
    FROM (
      SELECT
        *
      FROM "orders" AS "t1"
      WHERE
        "t1"."ordered_at" > CAST(FROM_ISO8601_TIMESTAMP('2025-12-15T13:00:00') AS TIMESTAMP)
        AND "t1"."ordered_at" <= CAST(FROM_ISO8601_TIMESTAMP('2026-03-15T13:00:00') AS TIMESTAMP)
        AND NOT (
          COALESCE("t1"."is_returned", FALSE)
        )
    ) AS "t4"
    GROUP BY
      1
  ) AS "t9"
    ON "t2"."customer_id" = "t9"."__act2_k"
  LEFT OUTER JOIN (
    SELECT
      "t13"."__act3_k",
      CAST(FLOOR(
        CAST((
          (
            ROW_NUMBER() OVER (ORDER BY "t13"."__act3_metric" ASC, "t13"."__act3_k" ASC) - 1
          ) * 10
        ) AS DOUBLE) / (
          COUNT(*) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        )
      ) AS BIGINT) + 1 AS "__act3_decile"
    FROM (
      SELECT
        "t6"."customer_id" AS "__act3_k",
        SUM("t6"."total") AS "__act3_metric"
      FROM "t5" AS "t6"
      GROUP BY
        1
    ) AS "t13"
  ) AS "t15"
    ON "t2"."customer_id" = "t15"."__act3_k"
) AS "t16"
WHERE
  COALESCE("t16"."loyalty_tier" IN ('gold', 'platinum'), FALSE)
  AND COALESCE(COALESCE("t16"."__act0_value", 0) >= 3, FALSE)
  AND COALESCE(
    COALESCE("t16"."__act1_value", CAST('0.00' AS DECIMAL(38, 2))) >= CAST('500.00' AS DECIMAL(38, 2)),
    FALSE
  )
  AND NOT (
    COALESCE(COALESCE("t16"."__act2_value", 0) >= 1, FALSE)
  )
  AND COALESCE("t16"."__act3_decile" >= 8, FALSE)
  AND NOT (
    COALESCE("t16"."email_opt_in" = FALSE, FALSE)
  )
  AND "t16"."customer_id" IS NOT NULL
