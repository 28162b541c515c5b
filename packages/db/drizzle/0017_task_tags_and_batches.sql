-- Reserved for issue 20 (0017_task_tags_and_batches): replaced by its migration before this session ends.
SELECT 1;
