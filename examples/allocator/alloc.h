#ifndef ALLOC_H
#define ALLOC_H
#include "boot.h"
void *mte_malloc(size_t size);
void mte_free(void *p);
#endif
