export { VirtualScheduler, type VirtualSchedulerOptions } from '../streams/virtualScheduler.js';
