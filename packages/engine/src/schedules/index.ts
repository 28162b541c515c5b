export {
  checkCron,
  createScheduleApi,
  SCHEDULE_NEXT_FIRES,
  SCHEDULE_RUNS_SHOWN,
  type ScheduleApi,
  type ScheduleDetail,
  type ScheduleInput,
  type SchedulePatch,
  type ScheduleView,
  scheduleView,
} from './api.ts';
export {
  type Cron,
  CronError,
  checkTimeZone,
  nextFire,
  nextFires,
  parseCron,
  resolve,
  shortestGap,
} from './cron.ts';
export { type FireOptions, type FirePassResult, fireSchedules, planFire } from './fire.ts';
