SELECT DISTINCT
  "t10"."customer_id"
FROM (
  SELECT
    "t2"."customer_id",
    "t2"."email",
    "t2"."loyalty_tier",
    "t2"."email_opt_in",
    "t2"."signup_at",
    "t2"."birth_date",
    "t7"."__act1_k",
    "t7"."__act2_value",
    "t7"."__act3_value",
    "t7"."__act4_value",
    "t9"."__act5_k",
    "t9"."__act7_decile"
  FROM "customers" AS "t2"
  LEFT OUTER JOIN (
    SELECT
      "t3"."customer_id" AS "__act1_k",
      COUNT(*) FILTER(WHERE
        "t3"."ordered_at" > MAKE_TIMESTAMP(2025, 3, 15, 13, 0, 0.0)) AS "__act2_value",
      SUM("t3"."total") FILTER(WHERE
        "t3"."ordered_at" < MAKE_TIMESTAMP(2026, 1, 1, 0, 0, 0.0)) AS "__act3_value",
      COUNT(*) FILTER(WHERE
        "t3"."ordered_at" > MAKE_TIMESTAMP(2025, 12, 15, 13, 0, 0.0)) AS "__act4_value"
    FROM (
      SELECT
        *
      FROM "orders" AS "t1"
      WHERE
        "t1"."ordered_at" >= MAKE_TIMESTAMP(2025, 1, 1, 0, 0, 0.0)
        AND "t1"."ordered_at" <= MAKE_TIMESTAMP(2026, 3, 15, 13, 0, 0.0)
        AND NOT (
          COALESCE("t1"."is_returned", FALSE)
        )
    ) AS "t3"
    GROUP BY
      1
  ) AS "t7"
    ON "t2"."customer_id" = "t7"."__act1_k"
  LEFT OUTER JOIN (
    SELECT
      "t5"."__act5_k",
      CAST(FLOOR(
        (
          (
            ROW_NUMBER() OVER (
              ORDER BY "t5"."__act6_metric" ASC, "t5"."__act5_k" ASC
              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
            ) - 1
          ) * 10
        ) / (
          COUNT(*) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        )
      ) AS BIGINT) + 1 AS "__act7_decile"
    FROM (
      SELECT
        "t4"."customer_id" AS "__act5_k",
        SUM("t4"."total") AS "__act6_metric"
      FROM (
        SELECT
          *
        FROM "orders" AS "t1"
        WHERE
          "t1"."ordered_at" > MAKE_TIMESTAMP(2025, 3, 15, 13, 0, 0.0)
          AND "t1"."ordered_at" <= MAKE_TIMESTAMP(2026, 3, 15, 13, 0, 0.0)
          AND NOT (
            COALESCE("t1"."is_returned", FALSE)
          )
      ) AS "t4"
      GROUP BY
        1
    ) AS "t5"
  ) AS "t9"
    ON "t2"."customer_id" = "t9"."__act5_k"
) AS "t10"
WHERE
  COALESCE("t10"."loyalty_tier" IN ('gold', 'platinum'), FALSE)
  AND COALESCE(COALESCE("t10"."__act2_value", 0) >= 3, FALSE)
  AND COALESCE(
    COALESCE("t10"."__act3_value", CAST(0.00 AS DECIMAL(38, 2))) >= CAST(500.00 AS DECIMAL(38, 2)),
    FALSE
  )
  AND NOT (
    COALESCE(COALESCE("t10"."__act4_value", 0) >= 1, FALSE)
  )
  AND COALESCE("t10"."__act7_decile" >= 8, FALSE)
  AND NOT (
    COALESCE("t10"."email_opt_in" = FALSE, FALSE)
  )
  AND "t10"."customer_id" IS NOT NULL
