-- The full parameter set behind each params_version used by article_signatures and duplicate_decisions:
-- MinHash scheme, seed, permutations, shingle settings, bands x rows, thresholds.
CREATE TABLE IF NOT EXISTS dedup_params (
    params_version  text PRIMARY KEY,
    params          jsonb NOT NULL,
    first_used_at   timestamptz NOT NULL DEFAULT now()
);
