-- Reserved for issue 20 (0019_webhooks): replaced by its migration before this session ends.
SELECT 1;
