#include "CKinema.h"
#include <dlfcn.h>

void *ckinema_dlopen(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
void *ckinema_dlsym(void *handle, const char *symbol) { return dlsym(handle, symbol); }
const char *ckinema_dlerror(void) { return dlerror(); }
