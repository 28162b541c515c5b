-- Reserved for issue 20 (0018_schedules): replaced by its migration before this session ends.
SELECT 1;
