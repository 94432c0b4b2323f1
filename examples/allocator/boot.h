#ifndef BOOT_H
#define BOOT_H
typedef unsigned long u64;
typedef unsigned long size_t;
void print(const char *s);
void print_hex(u64 v);
void exit_program(int code);
#endif
