export { VirtualScheduler, type VirtualSchedulerOptions } from './virtualScheduler.js';
