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
    "t7"."__act2_member",
    "t9"."__act3_k",
    "t9"."__act5_decile"
  FROM "customers" AS "t2"
  LEFT OUTER JOIN (
    SELECT
      "t4"."customer_id" AS "__act1_k",
      TRUE AS "__act2_member"
    FROM (
      SELECT DISTINCT
        "t0"."customer_id"
      FROM "customers" AS "t0"
      WHERE
        COALESCE("t0"."signup_at" >= TIMESTAMP_FROM_PARTS(2026, 2, 13, 0, 0, 0, 0), FALSE)
        AND COALESCE("t0"."birth_date" < DATE_FROM_PARTS(2008, 3, 15), FALSE)
        AND COALESCE((
          "t0"."email" IS NOT NULL
        ) AND (
          LENGTH("t0"."email") > 0
        ), FALSE)
        AND "t0"."customer_id" IS NOT NULL
    ) AS "t4"
  ) AS "t7"
    ON "t2"."customer_id" = "t7"."__act1_k"
  LEFT OUTER JOIN (
    SELECT
      "t5"."__act3_k",
      CAST(FLOOR(
        (
          (
            ROW_NUMBER() OVER (ORDER BY "t5"."__act4_metric" ASC, "t5"."__act3_k" ASC) - 1
          ) * 10
        ) / (
          COUNT(*) OVER (ORDER BY NULL ASC ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        )
      ) AS BIGINT) + 1 AS "__act5_decile"
    FROM (
      SELECT
        "t3"."customer_id" AS "__act3_k",
        MAX("t3"."ordered_at") AS "__act4_metric"
      FROM (
        SELECT
          *
        FROM "orders" AS "t1"
        WHERE
          "t1"."ordered_at" > TIMESTAMP_FROM_PARTS(2025, 3, 15, 13, 0, 0, 0)
          AND "t1"."ordered_at" <= TIMESTAMP_FROM_PARTS(2026, 3, 15, 13, 0, 0, 0)
          AND NOT (
            COALESCE("t1"."is_returned", FALSE)
          )
      ) AS "t3"
      GROUP BY
        1
    ) AS "t5"
  ) AS "t9"
    ON "t2"."customer_id" = "t9"."__act3_k"
) AS "t10"
WHERE
  "t10"."__act2_member" IS NOT NULL
  AND COALESCE(ENDSWITH(LOWER("t10"."email"), '@example.com'), FALSE)
  AND COALESCE((
    "t10"."__act5_decile" >= 9
  ) AND (
    "t10"."__act5_decile" <= 10
  ), FALSE)
  AND "t10"."customer_id" IS NOT NULL
