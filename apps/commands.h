/* Each `ferrum CMD` lives in apps/cmd_CMD.c as `int fr_cmd_CMD(int argc, char **argv)`, where
 * argv[0] is the command name. Exit codes: 0 success, 1 runtime failure (bad model file, ...),
 * 2 usage error (unknown flag, bad number, missing argument). */
#ifndef FR_APPS_COMMANDS_H
#define FR_APPS_COMMANDS_H

/* Declared weak so the tool links while a command's file is absent from a build; the dispatcher
 * reports such a command as unavailable. */
#define FR_COMMAND(name) int fr_cmd_##name(int argc, char **argv) __attribute__((weak))

FR_COMMAND(run);
FR_COMMAND(chat);
FR_COMMAND(bench);
FR_COMMAND(info);
FR_COMMAND(logits);
FR_COMMAND(tokenize);
FR_COMMAND(detokenize);
FR_COMMAND(template);
FR_COMMAND(quantize);
FR_COMMAND(serve);

#endif
