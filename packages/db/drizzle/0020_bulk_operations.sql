-- Reserved for issue 20 (0020_bulk_operations): replaced by its migration before this session ends.
SELECT 1;
