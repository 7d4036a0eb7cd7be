FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY shared shared
COPY services services
COPY readers readers
COPY acoflow acoflow
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
