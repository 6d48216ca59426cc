import { trainCommand } from '../train-command.js';
export default trainCommand('sft');
