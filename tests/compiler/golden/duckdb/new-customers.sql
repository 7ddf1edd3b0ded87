SELECT DISTINCT
  "t0"."customer_id"
FROM "customers" AS "t0"
WHERE
  COALESCE("t0"."signup_at" >= MAKE_TIMESTAMP(2026, 2, 13, 0, 0, 0.0), FALSE)
  AND COALESCE("t0"."birth_date" < MAKE_DATE(2008, 3, 15), FALSE)
  AND COALESCE((
    "t0"."email" IS NOT NULL
  ) AND (
    LENGTH("t0"."email") > 0
  ), FALSE)
  AND "t0"."customer_id" IS NOT NULL
