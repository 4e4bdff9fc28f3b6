-- Page metadata kept beside the cleaned values (issue 12): the title as the page gives it, the last
-- modification time, and why a date the page declared was not used.
ALTER TABLE articles ADD COLUMN IF NOT EXISTS raw_title text;
ALTER TABLE articles ADD COLUMN IF NOT EXISTS modified_at timestamptz;
ALTER TABLE articles ADD COLUMN IF NOT EXISTS date_issue text
    CHECK (date_issue IN ('future', 'before_1990'));
CREATE INDEX IF NOT EXISTS articles_date_issue_idx ON articles (date_issue) WHERE date_issue IS NOT NULL;
