# The base image: a tiny root filesystem, shared by every image built on it.
FROM scratch
COPY rootfs/ /
RUN mkdir -p /var/lib/web_data /var/log && echo "ready" > /var/lib/web_data/status
CMD ["/bin/sh"]
