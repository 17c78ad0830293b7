// The floor: one synced write, as a WAL commit pays. Usage: sync FILE N MODE(append|rewrite) CALL(fsync|fdatasync)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int c,char**v){int n=atoi(v[2]);int app=!strcmp(v[3],"append");int fds=!strcmp(v[4],"fdatasync");
 int fd=open(v[1],O_RDWR|O_CREAT|O_TRUNC,0600);char buf[4096];memset(buf,'x',sizeof buf);
 if(!app){write(fd,buf,sizeof buf);fsync(fd);}
 double*t=malloc(n*sizeof(double));
 for(int i=0;i<n;i++){double a=now(); if(app) write(fd,buf,sizeof buf); else pwrite(fd,buf,sizeof buf,0);
  if(fds) fdatasync(fd); else fsync(fd); t[i]=now()-a;}
 qsort(t,n,sizeof(double),cmp);
 printf("%-40s %-8s %-9s n=%d median %.3f ms  p25 %.3f  p75 %.3f  min %.3f\n",v[1],v[3],v[4],n,t[n/2],t[n/4],t[3*n/4],t[0]);
 close(fd);unlink(v[1]);return 0;}
