export * from '../operators/index.js';
export * from '../streams/index.js';
