// Intentionally empty: the module only re-exports <sys/epoll.h>.
#include "CEpoll.h"
