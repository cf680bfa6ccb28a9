FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobkit ./jobkit
RUN pip install --no-cache-dir '.[http,examples,archive]'
COPY jobs_example ./jobs_example
ENV PYTHONUNBUFFERED=1
CMD ["jobkit", "worker", "-A", "jobs_example", "-q", "reliable,high,default,low", "-c", "2"]
