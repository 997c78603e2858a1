# The web image: the base layers, plus the site and a VOLUME for its logs.
FROM demo/base:1
WORKDIR /srv/www
COPY site/ /srv/www/
ENV SITE=demo
VOLUME /var/log/web
CMD ["httpd", "-f", "-h", "/srv/www"]
