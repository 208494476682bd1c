/* seed-client: behaves on the wire exactly like the original node_mgr test clients
 * http_post_para and http_post_file (PROTOCOL §1 and §7), so tests see what they would print.
 * Written for node-mgr's tests; built by test/support/seed-client.ts with `cc`.
 *
 *   seed-client para http://HOST:PORT[/PATH] JSON
 *   seed-client file http://HOST:PORT[/PATH] JSON FILEPATH
 *   seed-client raw HOST PORT < request-bytes        (any request, sent in one send())
 *
 * What it does, as the originals do:
 *  - an HTTP/1.0 request with `HOST:` and (para) `Content-Type:application/x-www-form-urlencoded`
 *    without a space; file: the multipart layout with boundary
 *    ----WebKitFormBoundaryZjrentBBjYWJ7gXp, a part `parameters` then a part `filename` named by
 *    the file's base name; the head is one send(), the file follows in 2,048-byte sends, then the
 *    closing boundary;
 *  - ONE recv() of at most 2,047 bytes, then case-sensitive byte searches for "200 OK",
 *    "Content-Length:" and "\r\n\r\n"; the result is Content-Length bytes after the blank line;
 *  - stdout: "http return code error" / "get content length fail" when those searches fail, then
 *    always "result_str=<result>"; the file client first prints "file len = N" and "contentlen = N".
 * One difference, on purpose: when the body is longer than what the single recv() brought, the
 * originals copy Content-Length bytes anyway and read past their 2 KB buffer (whatever memory
 * lies there, or a crash). This one prints the bytes it received and says "reply cut" on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define BUFSIZE 2048
#define BOUNDARY "----WebKitFormBoundaryZjrentBBjYWJ7gXp"

static int parse_url(const char *url, char *host, size_t hostlen, int *port, char *path, size_t pathlen) {
  const char *p = url;
  if (strncmp(p, "http://", 7) != 0) return 0;
  p += 7;
  const char *slash = strchr(p, '/');
  size_t n = slash ? (size_t)(slash - p) : strlen(p);
  if (n >= hostlen) return 0;
  memcpy(host, p, n);
  host[n] = '\0';
  path[0] = '\0';
  if (slash && slash[1] != '\0') snprintf(path, pathlen, "%s", slash + 1);
  char *colon = strchr(host, ':');
  if (colon) {
    *colon = '\0';
    *port = atoi(colon + 1);
  } else {
    *port = 80;
  }
  return 1;
}

static int connect_to(const char *host, int port) {
  struct hostent *h = gethostbyname(host);
  if (!h) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  memcpy(&a.sin_addr, h->h_addr_list[0], sizeof a.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  /* Tests only: SEED_CLIENT_BIND=127.0.0.N makes the connection come from another loopback address. */
  const char *bind_to = getenv("SEED_CLIENT_BIND");
  if (bind_to) {
    struct sockaddr_in b;
    memset(&b, 0, sizeof b);
    b.sin_family = AF_INET;
    if (inet_pton(AF_INET, bind_to, &b.sin_addr) != 1 || bind(fd, (struct sockaddr *)&b, sizeof b) < 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Content-Length bytes after the first blank line, as the originals take them; NULL (and the
 * originals' message) when "Content-Length:" is not found with a positive number. */
static char *take_body(char *buf, ssize_t n, int quiet) {
  char *cl = strstr(buf, "Content-Length:");
  char *eol = cl ? strstr(cl + strlen("Content-Length:"), "\r\n") : NULL;
  int length = eol ? atoi(cl + strlen("Content-Length:")) : 0;
  if (!cl || !eol || length <= 0) {
    if (!quiet) printf("get content length fail\n");
    return NULL;
  }
  char *start = strstr(buf, "\r\n\r\n");
  if (!start) return NULL;
  start += 4;
  size_t have = (size_t)(buf + n - start);
  size_t take = (size_t)length;
  if (take > have) {
    fprintf(stderr, "reply cut: Content-Length %d, %zu body bytes in the one recv() of %zd bytes\n", length, have, n);
    take = have;
  }
  char *body = malloc(take + 1);
  memcpy(body, start, take);
  body[take] = '\0';
  return body;
}

/* The originals' reply handling: one recv(), then the case-sensitive searches. With
 * SEED_CLIENT_ERROR_BODY set, a reply without "200 OK" also has its body printed to stderr as
 * "error_body=…" (taken the same way), which the originals never look at. */
static void read_reply(int fd) {
  static char buf[BUFSIZE];
  char *body = NULL;
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  if (n > 0) {
    buf[n] = '\0';
    if (strstr(buf, "200 OK") == NULL) {
      printf("http return code error\n");
      if (getenv("SEED_CLIENT_ERROR_BODY")) {
        char *err = take_body(buf, n, 1);
        fprintf(stderr, "error_body=%s\n", err ? err : "");
        free(err);
      }
    } else {
      body = take_body(buf, n, 0);
    }
  }
  printf("result_str=%s\n", body ? body : "");
  free(body);
}

/* Sends the bytes read from stdin in one send() (any request, malformed ones included) and
 * handles the reply as the originals do. */
static int post_raw(const char *host, int port) {
  static char req[1 << 20];
  size_t n = fread(req, 1, sizeof req, stdin);
  int fd = connect_to(host, port);
  if (fd < 0) {
    printf("http connect fail\n");
    printf("result_str=\n");
    return 0;
  }
  if (n > 0) send_all(fd, req, n);
  read_reply(fd);
  close(fd);
  return 0;
}

static int post_para(const char *url, const char *json) {
  char host[100], path[256], req[BUFSIZE];
  int port;
  if (!parse_url(url, host, sizeof host, &port, path, sizeof path)) {
    printf("url fail: %s\n", url);
    printf("result_str=\n");
    return 0;
  }
  int n = snprintf(req, sizeof req,
                   "POST /%s HTTP/1.0\r\nHOST: %s:%d\r\nAccept: */*\r\nContent-Type:application/x-www-form-urlencoded\r\nContent-Length: %ld\r\n\r\n%s",
                   path, host, port, (long)strlen(json), json);
  if (n >= (int)sizeof req - 1) {
    printf("post_str %s is to long\n", json);
    printf("result_str=\n");
    return 0;
  }
  int fd = connect_to(host, port);
  if (fd < 0) {
    printf("http connect fail\n");
    printf("result_str=\n");
    return 0;
  }
  send(fd, req, (size_t)n, MSG_NOSIGNAL);
  read_reply(fd);
  close(fd);
  return 0;
}

static int post_file(const char *url, const char *json, const char *filepath) {
  char host[100], path[256], head[BUFSIZE], chunk[BUFSIZE];
  int port;
  struct stat st;
  if (stat(filepath, &st) != 0) {
    printf("file no find!\n");
    printf("result_str=\n");
    return 0;
  }
  long filelen = (long)st.st_size;
  printf("file len = %ld\n", filelen);
  const char *base = strrchr(filepath, '/');
  base = base ? base + 1 : filepath;
  char part[BUFSIZE];
  int partlen = snprintf(part, sizeof part,
                         "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"parameters\"\r\n\r\n%s\r\n--" BOUNDARY
                         "\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                         json, base);
  const char *tail = "\r\n--" BOUNDARY "--\r\n";
  long contentlen = partlen + filelen + (long)strlen(tail);
  printf("contentlen = %ld\n", contentlen);
  if (!parse_url(url, host, sizeof host, &port, path, sizeof path)) {
    printf("url fail: %s\n", url);
    printf("result_str=\n");
    return 0;
  }
  int n = snprintf(head, sizeof head,
                   "POST /%s HTTP/1.0\r\nHOST: %s:%d\r\nAccept: */*\r\nContent-Type: multipart/form-data; boundary=" BOUNDARY "\r\nContent-Length: %ld\r\n\r\n",
                   path, host, port, contentlen);
  if (partlen >= (int)sizeof part - 1 || n + partlen >= (int)sizeof head - 1) {
    printf("post_str %s is to long\n", json);
    printf("result_str=\n");
    return 0;
  }
  memcpy(head + n, part, (size_t)partlen);
  n += partlen;
  int fd = connect_to(host, port);
  if (fd < 0) {
    printf("http connect fail\n");
    printf("result_str=\n");
    return 0;
  }
  send(fd, head, (size_t)n, MSG_NOSIGNAL);
  FILE *fp = fopen(filepath, "rb");
  if (!fp) {
    printf("open file %s error\n", filepath);
    printf("result_str=\n");
    close(fd);
    return 0;
  }
  size_t r;
  while ((r = fread(chunk, 1, sizeof chunk, fp)) > 0) {
    if (send_all(fd, chunk, r) < 0) break;
  }
  fclose(fp);
  send(fd, tail, strlen(tail), MSG_NOSIGNAL);
  read_reply(fd);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc == 4 && strcmp(argv[1], "para") == 0) return post_para(argv[2], argv[3]);
  if (argc == 5 && strcmp(argv[1], "file") == 0) return post_file(argv[2], argv[3], argv[4]);
  if (argc == 4 && strcmp(argv[1], "raw") == 0) return post_raw(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: seed-client para URL JSON | seed-client file URL JSON FILEPATH | seed-client raw HOST PORT < request\n");
  return 2;
}
