/* The aisp command line: one function per command, each `int cmd_x(int argc, char **argv)`
 * with argv[0] the command name; returns the process exit status. */
#pragma once

int cmd_image(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_result(int argc, char **argv);
int cmd_nodes(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_unseal(int argc, char **argv);
int cmd_skill(int argc, char **argv);
int cmd_blob(int argc, char **argv);
